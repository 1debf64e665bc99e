## Discord adapter: command and context-menu names, option descriptions, modals, and the
## adapter's own lines. Command names: lower case, no spaces, at most 32 characters.
## Descriptions: at most 100 characters. Menu names: at most 32 characters.

discord-name-imagine = imagine
discord-name-swap = swap
discord-name-upscale = upscale
discord-name-settings = settings
discord-name-balance = balance
discord-name-models = models
discord-name-lang = lang
discord-name-cancel = cancel
discord-name-help = help
discord-name-grant = grant
discord-name-stats = stats
discord-name-pause = pause
discord-name-resume = resume

discord-menu-imagine = Imagine from this
discord-menu-upscale = Upscale
discord-menu-swap = Swap face into this

discord-option-change = e.g. “ar 3:2”, “chat ar 3:2”, “server pool 50” or “reset”
discord-option-language = The language to answer in
discord-option-job = The job to cancel (all your jobs when left out)
discord-option-user = Who gets the credits
discord-option-amount = How many credits (negative takes them back)
discord-option-target = The picture that gets the face

discord-modal-imagine = Imagine from this picture
discord-modal-prompt = What to make of it
discord-modal-prompt-hint = e.g. a watercolor --strength 0.5 (flags work too)
discord-modal-swap = Swap a face into this picture
discord-modal-face = The face photo

discord-cannot-post = I cannot post pictures in this channel. A server admin can let me: View Channel, Send Messages (Send Messages in Threads, in threads) and Attach Files.
discord-no-picture = That message has no picture I can use.
discord-file-too-big = That file is too big for me (at most { $size }).
discord-download-failed = I could not fetch that picture from Discord. Please try again.
discord-queued = ⏳ Queued — the picture will show up here: { $link }
discord-reencoded = (re-encoded to fit this chat's upload limit of { $size })
