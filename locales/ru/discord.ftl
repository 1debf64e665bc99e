## Адаптер Discord: имена команд и пунктов контекстного меню, описания опций, формы и
## собственные строки адаптера. Имена команд: строчные, без пробелов, не длиннее 32 символов.
## Описания: не длиннее 100 символов. Пункты меню: не длиннее 32 символов.

discord-name-imagine = нарисовать
discord-name-swap = заменить-лицо
discord-name-upscale = увеличить
discord-name-settings = настройки
discord-name-balance = баланс
discord-name-models = модели
discord-name-lang = язык
discord-name-cancel = отмена
discord-name-help = помощь
discord-name-grant = начислить
discord-name-stats = статистика
discord-name-pause = пауза
discord-name-resume = продолжить

discord-menu-imagine = Нарисовать по этому
discord-menu-upscale = Увеличить
discord-menu-swap = Вставить сюда лицо

discord-option-change = например «ar 3:2», «chat ar 3:2», «server pool 50» или «reset»
discord-option-language = На каком языке отвечать
discord-option-job = Какую задачу отменить (без него — все ваши)
discord-option-user = Кому начислить кредиты
discord-option-amount = Сколько кредитов (отрицательное число забирает)
discord-option-target = Картинка, в которую вставить лицо

discord-modal-imagine = Нарисовать по этой картинке
discord-modal-prompt = Что из неё сделать
discord-modal-prompt-hint = например: акварель --strength 0.5 (флаги тоже работают)
discord-modal-swap = Вставить лицо в эту картинку
discord-modal-face = Фото лица

discord-cannot-post = Я не могу публиковать картинки в этом канале. Администратор сервера может дать мне права: «Просматривать канал», «Отправлять сообщения» («Отправлять сообщения в ветках» — в ветках) и «Прикреплять файлы».
discord-no-picture = В этом сообщении нет картинки, с которой я могу работать.
discord-file-too-big = Этот файл слишком большой (не больше { $size }).
discord-download-failed = Не удалось получить картинку из Discord. Попробуйте ещё раз.
discord-queued = ⏳ В очереди — картинка появится здесь: { $link }
discord-reencoded = (пересжато под лимит загрузки этого чата: { $size })
