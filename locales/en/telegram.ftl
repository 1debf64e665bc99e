## Telegram adapter.

telegram-file-too-big = That file is too big for me to fetch (at most { $mb } MB). Please send it as a photo.
telegram-download-failed = I could not fetch that picture from Telegram. Please send it again.
telegram-buttons-under-album = ⬆️
