## Core messages of imagebot (handlers, console). Placeholders are { $name }.

help =
    🎨 I make and edit pictures.
    /imagine <prompt> [flags] — make pictures. Flags: --ar 3:2, --seed 7, --n 4, --steps 20, --cfg 7,
      --no blurry, text, --model NAME, --backend NAME, --strength 0.6, --style NAME, --control canny
    Send a photo with an /imagine caption, or reply /imagine to a photo, to repaint it.
    Reply to one of my results with only flags (e.g. --seed 9) to run it again with those changes.
    /upscale — reply to a picture to enlarge it. /swap — reply to a picture with a face photo attached.
    In groups, admins set the chat's defaults with /settings chat ar 3:2 and a shared daily pool with /settings chat pool 50.
    /settings — your defaults · /balance — your quota ({ $daily } free pictures a day) · /models · /lang · /cancel
cmd-imagine = Make pictures from a prompt
cmd-swap = Swap a face into a picture
cmd-upscale = Enlarge a picture
cmd-settings = Your default size, model, steps…
cmd-balance = Your free pictures and credits
cmd-models = Models you can use
cmd-lang = Change the language
cmd-cancel = Cancel your running jobs
cmd-help = How to use the bot
cmd-grant = Give credits (admin)
cmd-stats = Bot statistics (admin)
cmd-pause = Pause new jobs (admin)
cmd-resume = Resume new jobs (admin)

console-welcome = imagebot console. Type /help for commands, /quit to leave. Backends: { $backends }. You are “{ $user }” (your login name).
console-resumed = ↻ Resuming { $count } unfinished job(s) from the last run.
console-default-model-missing = ⚠️ The default model “{ $model }” cannot be used here: it is not downloaded and the Hugging Face hub cannot be reached. Build the demo model with “make demo-model” and use --model demo (it paints noise), or set IMAGEBOT_DEFAULT_MODEL=demo.
error-control-not-on-model = The model { $model } has no “{ $value }” ControlNet. It has: { $choices }.

## Status of a job
status-queued = ⏳ Queued — position { $position }
status-starting = 🎨 Starting…
status-running = 🎨 { $bar } { $percent }% ({ $step }/{ $total })
status-eta = · about { $seconds }s left
job-failed = ❌ { $reason }{ $refunded ->
    [0] {""}
   *[other] {" "}The { $refunded } picture(s) it held went back to your quota.
}
job-cancelled = 🚫 Cancelled.{ $refunded ->
    [0] {""}
   *[other] {" "}The { $refunded } picture(s) it held went back to your quota.
}
result-withheld = ⚠️ { $count } picture(s) were withheld by the service ({ $reason }) and not charged.

## Results
caption-params = seed { $seed } · { $steps } steps · cfg { $cfg } · { $width }×{ $height } · { $model }
caption-faceswap = Face swap
caption-upscale = Upscaled
button-reroll = 🔄 Reroll
button-cancel = ✖ Cancel

## Buttons
press-invalid = This button is no longer valid here.
press-not-yours = Only the person who asked for this picture can do that.
press-queued = On it!
settings-saved = Saved.
cancel-too-late = Too late to cancel: the pictures are being delivered.

## Commands
settings-show =
    ⚙️ Your settings
    backend: { $backend }
    model: { $model }
    aspect: { $ar }
    steps: { $steps }
    pictures per job: { $n }
    language: { $lang }
    send originals as files: { $originals }
    Change with: /settings ar 3:2 · /settings model NAME · /settings steps 20 · /settings n 2 · /settings reset
yes = yes
no = no
balance =
    💳 Free pictures left today: { $free } of { $daily }
    Credits: { $credits }
    Held by running jobs: { $reserved } ({ $jobs } open job(s))
balance-chat-pool = 👥 This chat's shared pool: { $free } of { $daily } pictures left today (used before your own).
models-header = Models you can use with --model NAME:
models-line = • { $backend }: { $models }
lang-set = Language set to { $lang }.
lang-choose = Choose your language:
cancel-nothing = You have nothing running.
cancel-done = Cancelled { $count } job(s).
grant-done = Granted { $amount } credit(s) to { $user }; they now have { $credits }.
stats = Users { $users } · queued { $queued } · running { $running } · done { $done } · failed { $failed } · cancelled { $cancelled } · waiting in memory { $waiting }
stats-lane = • lane { $lane }: { $waiting } waiting, { $running } of { $capacity } running
paused = New jobs are paused.
resumed = New jobs are accepted again.

## Errors
error-internal = Something went wrong on our side. Nothing was charged.
error-storage-busy = The bot is busy for a moment (its database is in use). Please send that again; nothing was charged.
error-delivery-failed = The pictures were made but could not be delivered to this chat.
error-job-crashed = This job stopped the bot several times, so it was given up.
error-job-timeout = The job took longer than { $seconds }s and was stopped.
error-backend-cannot = The backend { $backend } cannot do { $kind } jobs.
error-backend-unknown = There is no backend called “{ $backend }”. Choose one of: { $choices }.
error-backend-no-result = The backend { $backend } finished without pictures.
error-model-unknown = There is no model “{ $model }” on { $backend }. Choose one of: { $choices }.
error-paused = The bot is paused for maintenance. Please try again later.
error-quota = { $credits ->
    [0] This needs { $needed } of your free pictures and { $free } are left today ({ $daily } a day). Try fewer pictures (--n) or wait for tomorrow.
   *[other] This needs { $needed } but you have { $available } ({ $free } free pictures left today and { $credits } credits). Try fewer pictures (--n).
}
error-too-many-queued = You already have { $count } job(s) waiting. Please wait for one to finish.
error-queue-full = The queue is full right now. Please try again in a minute.
error-prompt-empty = Please describe the picture, e.g. /imagine a red fox in snow.
error-rerun-not-generation = Only generated pictures can be re-run with new flags.
error-control-type = “{ $value }” is not a control type. Choose one of: { $choices }.
error-needs-image = { $command } needs a picture: attach one or reply to one.
error-swap-needs-two = /swap needs two pictures: reply to the picture and attach the face photo.
error-chat-admin-only = Only the chat's admins can change the chat's defaults.
error-space-admin-only = Only members who may manage this server can change its defaults.
error-admin-only = Only bot admins can do that.
error-grant-usage = Usage: /grant platform:user_id amount
error-settings-usage = Usage: /settings KEY VALUE, e.g. /settings ar 3:2 — or /settings reset
error-setting-value = “{ $value }” is not a valid { $key }. Try: { $choices }.
error-setting-unknown = There is no setting “{ $key }”. Settings: { $choices }.
error-file-not-found = Cannot read the file { $path }.

error-flag-value = { $flag } needs { $expected ->
    [integer] a whole number
    [number] a number
    [ratio] an aspect like 3:2
    [size] a size like 768x512
    [name] a name
   *[other] a value
}, not “{ $value }”.
error-flag-repeated = { $flag } is given twice.
error-flag-missing-value = { $flag } needs a value.
error-unknown-flags = Unknown flag(s): { $flags }. Known flags: { $known }.
error-flag-console-only = { $flag } works only in the console. Attach the picture instead.
error-flag-lora = { $flag } takes NAME or NAME:WEIGHT with a weight from -2 to 2 (e.g. --lora film_grain:0.7), not “{ $value }”.
error-flag-extra-name = { $flag } needs a name without < > : / \ | that does not start with a dot, not “{ $value }”.
error-flag-name-twice = { $flag } names “{ $value }” twice.
error-flag-too-many = { $flag } takes at most { $limit } names.
error-aspect-too-extreme = The aspect { $value } is too extreme (at most 4:1).
note-size-rounded = Sizes must be multiples of 8: { $asked } became { $used }.

error-too-long = { $field } is too long ({ $value }); the limit is { $limit }.
error-too-short = { $field } is too short.
error-too-small = { $field } = { $value } is too small; the minimum is { $limit }.
error-too-large = { $field } = { $value } is too large; the maximum is { $limit }.
error-not-a-number = { $field } must be a number, not “{ $value }”.
error-not-one-of = { $field } must be one of { $choices }, not “{ $value }”.
error-multiple-of-8 = { $field } = { $value } must be a multiple of 8.
error-too-many-pixels = { $width }×{ $height } is too large; at most 2048×2048 pixels in all.
error-missing = { $field } is missing.
error-invalid = { $field } = “{ $value }” is not valid.

error-image-too-big = The { $what ->
    [mask] mask
    [face] face photo
   *[other] picture
} is too big (at most { $mb } MB).
error-image-too-many-pixels = The { $what ->
    [mask] mask
    [face] face photo
   *[other] picture
} is too large ({ $width }×{ $height }); at most 4096×4096.
error-image-too-thin = The { $what ->
    [mask] mask
    [face] face photo
   *[other] picture
} is { $width }×{ $height } pixels: too thin to work with. Its long side may be at most { $ratio } times its short side.
error-image-corrupt = The { $what ->
    [mask] mask
    [face] face photo
   *[other] picture
} cannot be read. Please send a PNG, JPEG or WebP image.
withheld = held back by the service
help-console =
    🎨 I make and edit pictures. Pictures are saved under data/outputs/.
    /imagine <prompt> [flags] — make pictures. Flags: --ar 3:2, --seed 7, --n 4, --steps 20, --cfg 7,
      --no blurry, text, --model NAME, --backend NAME, --strength 0.6, --style NAME, --control canny
    /imagine <prompt> --image PATH repaints a picture from your disk; add --mask PATH (white = repaint) to inpaint.
    Type a button's label (U1, V2, 🔄 Reroll) to press it on the latest result.
    /upscale --image PATH — enlarge a picture. /swap --face FACE.png --image PICTURE.png — swap a face.
    /settings — your defaults · /balance — your quota ({ $daily } free pictures a day) · /models · /lang · /cancel · /quit

## What each flag does (help, Discord option descriptions: at most 100 characters)
flag-prompt = What to paint
flag-ar = Aspect ratio, e.g. 3:2
flag-size = Exact size, e.g. 768x512 (rounded to multiples of 8)
flag-seed = Seed: the same seed paints the same picture
flag-no = What to leave out (negative prompt)
flag-n = How many pictures
flag-steps = Sampling steps (more: slower, finer)
flag-cfg = How closely to follow the prompt (CFG scale)
flag-model = The model to paint with
flag-backend = Where to paint: this machine or a service
flag-strength = How much to change the picture (img2img)
flag-style = A style the backend offers
flag-control = ControlNet: keep the picture's edges, depth or pose
flag-scale = How many times larger (2–4)
flag-lora = LoRA NAME or NAME:WEIGHT
flag-vae = The VAE to decode with
flag-embedding = A textual-inversion embedding for the negative prompt
flag-image = A picture to work on
flag-mask = Inpainting mask: white is repainted
flag-face = The face to swap in
picture-options = What shall I do with this picture? Reply to it with /imagine and what to paint to repaint it, or press a button.
button-upscale = ⬆️ Upscale
button-use-as-face = 🙂 Use as face
face-saved = Saved as your face: reply /swap to any picture to put it there.
models-more = … and { $count } more: /models { $backend }
models-none = No model matches “{ $search }”.
models-backend-header = Models on { $backend } ({ $count }), page { $page } of { $pages }:
models-extras = { $kind ->
    [lora] LoRAs (--lora NAME:0.8)
    [vae] VAEs (--vae NAME)
   *[other] Embeddings (--embedding NAME)
}: { $names }
models-next-page = More: /models { $backend } page { $page }
models-unavailable = { $model } ({ $reason ->
    [not-downloaded] not downloaded, no internet here
    [missing-folder] its folder is missing
   *[other] cannot be used here
})
help-discord =
    🎨 I make and edit pictures.
    /imagine prompt: a red fox in snow — with options (ar, seed, steps, n, model…) or flags in the prompt: --ar 3:2 --seed 7 --no blurry
    Attach a picture to /imagine (image, and mask to inpaint) to repaint it, or right-click a message with a picture → Apps → Imagine from this, Upscale, Swap face into this.
    Under a result: U1… upscale, V1… vary, 🔄 reroll (anyone may press them, on their own quota).
    /upscale image: · /swap face: image: · /settings change: ar 3:2 (server admins: server ar 3:2, server pool 50; channel: chat ar 3:2)
    /balance — your quota ({ $daily } free pictures a day) · /models · /lang · /cancel
