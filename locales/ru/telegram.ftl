## Адаптер Telegram.

telegram-file-too-big = Этот файл слишком большой, я не могу его скачать (максимум { $mb } МБ). Пожалуйста, пришлите его как фото.
telegram-download-failed = Не получилось скачать эту картинку из Telegram. Пожалуйста, пришлите её ещё раз.
telegram-buttons-under-album = ⬆️
