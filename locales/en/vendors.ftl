# Vendor backends (engine/vendors): errors and notes about mapped values.
# Every error has $backend, the backend's name.


## Transport and answers

error-vendor-timeout = { $backend } did not answer in time. Please try again later.
error-vendor-unavailable = { $backend } is not available right now. Please try again later.
error-vendor-rejected = { $backend } refused the request (HTTP { $status }).
error-vendor-rate-limited = { $backend } is receiving too many requests. Please wait a little and try again.
error-vendor-bad-answer = { $backend } sent an answer the bot cannot read.
error-vendor-bad-image = { $backend } sent a picture the bot cannot open.
error-vendor-image-too-large = { $backend } sent a picture that is too large.

## Jobs a vendor cannot do ($reason selects the sentence)

error-vendor-cannot = { $reason ->
    [prompt-too-long] { $backend } takes prompts of at most { $limit } characters; yours has { $value }. Please shorten it.
    [style] { $backend } has no style “{ $value }”. Styles: { $choices }
    [model] { $backend } has no model “{ $value }”. Models: { $choices }
    [kind] { $backend } cannot do { $value } jobs.
   *[other] { $backend } cannot do this job.
}

## Notes shown next to a result

vendor-note-mapped = { $backend } cannot use { $what ->
        [size] size
        [n] number of images
        [steps] steps
        [cfg] guidance (cfg)
        [strength] strength
        [style] style
        [seed] seed
        [negative_prompt] negative prompt
        [model] model
       *[other] { $what }
    } { $asked }; it used { $used } instead.
vendor-note-ignored = { $backend } does not support { $what ->
        [size] size
        [n] number of images
        [steps] steps
        [cfg] guidance (cfg)
        [strength] strength
        [style] style
        [seed] seed
        [negative_prompt] negative prompt
        [model] model
       *[other] { $what }
    }; it was ignored.

## Vendor failures with the vendor's own words ($detail, already cleaned and shortened)

error-paint4-failed = paint4.art could not make the picture (code { $code }): { $detail }
error-aiimage-failed = The image service refused the request: { $detail }
error-sdapi-failed = The Stable Diffusion server could not make the picture: { $detail }

## jumdata answer codes ($code is the number)

error-jumdata-task-unknown = jumdata does not know this task any more (code { $code }).
error-jumdata-moderation = jumdata blocked the prompt by its content rules (code { $code }). Please change the wording.
error-jumdata-bad-parameter = jumdata rejected a parameter of the request (code { $code }).
error-jumdata-misconfigured = The bot is not set up correctly for jumdata (code { $code }). Please tell the bot's admin.
error-jumdata-wrong-path = The jumdata address is wrong; please tell the bot's admin (code { $code }).
error-jumdata-maintenance = jumdata is under maintenance (code { $code }). Please try again later.
error-jumdata-not-enabled = The jumdata drawing service is not enabled for this bot; please tell the bot's admin (code { $code }).
error-jumdata-account-disabled = The bot's jumdata account is disabled; please tell the bot's admin (code { $code }).
error-jumdata-api-disabled = The jumdata drawing service is switched off (code { $code }).
error-jumdata-quota = The bot has used up its jumdata quota (code { $code }). Please try again later.
error-jumdata-ip-not-allowed = jumdata does not accept requests from this server's address; please tell the bot's admin (code { $code }).
error-jumdata-too-frequent = jumdata is receiving too many requests (code { $code }). Please wait a little and try again.
error-jumdata-timeout = jumdata timed out (code { $code }). Please try again.
error-jumdata-other = jumdata could not make the picture (code { $code }).
