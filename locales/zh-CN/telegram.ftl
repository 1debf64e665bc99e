## Telegram 适配器。

telegram-file-too-big = 这个文件太大，我无法获取（最多 { $mb } MB）。请以图片形式发送。
telegram-download-failed = 无法从 Telegram 获取这张图片，请重新发送。
telegram-buttons-under-album = ⬆️
