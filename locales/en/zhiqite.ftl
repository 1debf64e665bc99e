# zhiqite AIGC image service (engine/vendors/zhiqite.py). Every error has $backend.

error-zhiqite-auth = The bot's zhiqite credentials were refused (HTTP { $status }); please tell the bot's admin.
error-zhiqite-quota = The bot has used up the zhiqite calls it paid for (HTTP { $status }). Please tell the bot's admin, or pick another backend with --backend.
error-zhiqite-throttled = zhiqite is limiting how often the bot may call it right now (HTTP { $status }). Please wait a little and try again.
error-zhiqite-needs-public-url = zhiqite can do { $kind } jobs only when the bot has a public web address for the pictures (the IMAGEBOT_PUBLIC_BASE_URL setting). Please tell the bot's admin.
error-zhiqite-rejected = zhiqite refused the request (code { $code }): { $detail }
error-zhiqite-failed = zhiqite could not make the picture: { $detail }
error-zhiqite-input-too-large = zhiqite upscales pictures of at most { $limit }×{ $limit } pixels; this one is { $width }×{ $height }.

## Why a picture was withheld (shown inside result-withheld)

withheld-zhiqite-deleted = deleted by zhiqite for breaking its content rules
withheld-zhiqite-hidden = held back by zhiqite's content check
