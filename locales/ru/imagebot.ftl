## Основные сообщения imagebot (обработчики, консоль). Плейсхолдеры пишутся как { $name }.

help =
    🎨 Я рисую и редактирую картинки.
    /imagine <описание> [флаги] — нарисовать картинки. Флаги: --ar 3:2, --seed 7, --n 4, --steps 20, --cfg 7,
      --no размытость, текст, --model НАЗВАНИЕ, --backend НАЗВАНИЕ, --strength 0.6, --style НАЗВАНИЕ, --control canny
    Пришлите фото с подписью /imagine или ответьте на фото командой /imagine — и я его перерисую.
    Ответьте на мою картинку одними флагами (например, --seed 9), чтобы нарисовать её заново с этими изменениями.
    /upscale — ответьте на картинку, чтобы увеличить её. /swap — ответьте на картинку и приложите фото лица.
    В группах админы задают настройки чата командой /settings chat ar 3:2, а общий дневной лимит — командой /settings chat pool 50.
    /settings — ваши настройки · /balance — ваш лимит ({ $daily ->
        [one] { $daily } бесплатная картинка
        [few] { $daily } бесплатные картинки
        [many] { $daily } бесплатных картинок
       *[other] { $daily } бесплатных картинок
    } в день) · /models · /lang · /cancel
cmd-imagine = Нарисовать картинки по описанию
cmd-swap = Заменить лицо на картинке
cmd-upscale = Увеличить картинку
cmd-settings = Размер, модель, шаги по умолчанию…
cmd-balance = Бесплатные картинки и кредиты
cmd-models = Доступные модели
cmd-lang = Сменить язык
cmd-cancel = Отменить ваши текущие задачи
cmd-help = Как пользоваться ботом
cmd-grant = Начислить кредиты (админ)
cmd-stats = Статистика бота (админ)
cmd-pause = Приостановить новые задачи (админ)
cmd-resume = Снова принимать задачи (админ)

console-welcome = Консоль imagebot. Введите /help, чтобы увидеть команды, или /quit, чтобы выйти. Бэкенды: { $backends }. Вы — «{ $user }» (ваше имя для входа в систему).
console-resumed = ↻ Продолжаю незавершённые задачи с прошлого запуска: { $count }.
console-default-model-missing = ⚠️ Модель по умолчанию «{ $model }» здесь недоступна: она не скачана, а до Hugging Face Hub не достучаться. Соберите демо-модель командой «make demo-model» и укажите --model demo (она рисует шум) или задайте IMAGEBOT_DEFAULT_MODEL=demo.
error-control-not-on-model = У модели { $model } нет ControlNet типа «{ $value }». Есть: { $choices }.

## Статус задачи
status-queued = ⏳ В очереди — место { $position }
status-starting = 🎨 Начинаю…
status-running = 🎨 { $bar } { $percent }% ({ $step }/{ $total })
status-eta = · осталось около { $seconds } с
job-failed = ❌ { $reason }{ $refunded ->
    [0] {""}
    [one] {" "}{ $refunded } картинка возвращена в ваш лимит.
    [few] {" "}{ $refunded } картинки возвращены в ваш лимит.
    [many] {" "}{ $refunded } картинок возвращено в ваш лимит.
   *[other] {" "}{ $refunded } картинок возвращено в ваш лимит.
}
job-cancelled = 🚫 Отменено.{ $refunded ->
    [0] {""}
    [one] {" "}{ $refunded } картинка возвращена в ваш лимит.
    [few] {" "}{ $refunded } картинки возвращены в ваш лимит.
    [many] {" "}{ $refunded } картинок возвращено в ваш лимит.
   *[other] {" "}{ $refunded } картинок возвращено в ваш лимит.
}
result-withheld = { $count ->
    [one] ⚠️ Сервис не выдал { $count } картинку ({ $reason }), за неё ничего не списано.
    [few] ⚠️ Сервис не выдал { $count } картинки ({ $reason }), за них ничего не списано.
    [many] ⚠️ Сервис не выдал { $count } картинок ({ $reason }), за них ничего не списано.
   *[other] ⚠️ Сервис не выдал { $count } картинок ({ $reason }), за них ничего не списано.
}

## Результаты
caption-params = сид { $seed } · { $steps ->
    [one] { $steps } шаг
    [few] { $steps } шага
    [many] { $steps } шагов
   *[other] { $steps } шагов
} · cfg { $cfg } · { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) } · { $model }
caption-faceswap = Замена лица
caption-upscale = Увеличено
button-reroll = 🔄 Ещё вариант
button-cancel = ✖ Отмена

## Кнопки
press-invalid = Эта кнопка здесь больше не работает.
press-not-yours = Это может сделать только тот, кто заказал картинку.
press-queued = Уже делаю!
settings-saved = Сохранено.
cancel-too-late = Отменять уже поздно: картинки отправляются.

## Команды
settings-show =
    ⚙️ Ваши настройки
    бэкенд: { $backend }
    модель: { $model }
    соотношение сторон: { $ar }
    шаги: { $steps }
    картинок за раз: { $n }
    язык: { $lang }
    присылать оригиналы файлами: { $originals }
    Изменить: /settings ar 3:2 · /settings model НАЗВАНИЕ · /settings steps 20 · /settings n 2 · /settings reset
yes = да
no = нет
balance =
    💳 Бесплатных картинок на сегодня осталось: { $free } из { $daily }
    Кредиты: { $credits }
    Занято текущими задачами: { $reserved } ({ $jobs ->
        [one] { $jobs } открытая задача
        [few] { $jobs } открытые задачи
        [many] { $jobs } открытых задач
       *[other] { $jobs } открытых задач
    })
balance-chat-pool = 👥 Общий лимит этого чата: на сегодня осталось { $free } из { $daily } { $daily ->
    [one] картинки
    [few] картинок
    [many] картинок
   *[other] картинок
} (он тратится раньше вашего).
models-header = Модели, которые можно выбрать через --model НАЗВАНИЕ:
models-line = • { $backend }: { $models }
lang-set = Выбран язык: { $lang }.
lang-choose = Выберите язык:
cancel-nothing = Сейчас у вас ничего не запущено.
cancel-done = { $count ->
    [one] Отменена { $count } задача.
    [few] Отменены { $count } задачи.
    [many] Отменено { $count } задач.
   *[other] Отменено задач: { $count }.
}
grant-done = { $amount ->
    [one] Пользователю { $user } начислен { $amount } кредит
    [few] Пользователю { $user } начислено { $amount } кредита
    [many] Пользователю { $user } начислено { $amount } кредитов
   *[other] Пользователю { $user } начислено кредитов: { $amount }
}, теперь на счёте: { $credits }.
stats = Пользователей: { $users } · в очереди: { $queued } · выполняются: { $running } · готово: { $done } · с ошибкой: { $failed } · отменено: { $cancelled } · ждут в памяти: { $waiting }
stats-lane = • линия { $lane }: ждут { $waiting }, выполняются { $running } из { $capacity }
paused = Новые задачи приостановлены.
resumed = Новые задачи снова принимаются.

## Ошибки
error-internal = У нас что-то пошло не так. Ничего не списано.
error-storage-busy = Бот на минутку занят (его база данных используется). Пожалуйста, отправьте это ещё раз; ничего не списано.
error-delivery-failed = Картинки готовы, но отправить их в этот чат не получилось.
error-job-crashed = Эта задача несколько раз роняла бота, поэтому от неё пришлось отказаться.
error-job-timeout = Задача шла дольше { $seconds } с и была остановлена.
error-backend-cannot = Бэкенд { $backend } не умеет выполнять задачи типа { $kind }.
error-backend-unknown = Бэкенда «{ $backend }» нет. Выберите один из: { $choices }.
error-backend-no-result = Бэкенд { $backend } закончил работу без картинок.
error-model-unknown = У { $backend } нет модели «{ $model }». Выберите одну из: { $choices }.
error-paused = Бот на техобслуживании. Пожалуйста, попробуйте позже.
error-quota = { $credits ->
    [0] { $needed ->
        [one] Для этого нужна { $needed } бесплатная картинка
        [few] Для этого нужны { $needed } бесплатные картинки
        [many] Для этого нужно { $needed } бесплатных картинок
       *[other] Для этого нужно бесплатных картинок: { $needed }
    }, а на сегодня осталось { $free } (лимит — { $daily } в день). Попробуйте поменьше картинок (--n) или подождите до завтра.
   *[other] Для этого нужно { $needed }, а у вас есть { $available } (бесплатных картинок на сегодня: { $free }, кредитов: { $credits }). Попробуйте поменьше картинок (--n).
}
error-too-many-queued = { $count ->
    [1] У вас уже ждёт { $count } задача. Пожалуйста, подождите, пока она завершится.
    [one] У вас уже ждёт { $count } задача. Пожалуйста, подождите, пока одна из них завершится.
    [few] У вас уже ждут { $count } задачи. Пожалуйста, подождите, пока одна из них завершится.
    [many] У вас уже ждут { $count } задач. Пожалуйста, подождите, пока одна из них завершится.
   *[other] У вас уже ждут задачи: { $count }. Пожалуйста, подождите, пока одна из них завершится.
}
error-queue-full = Очередь сейчас переполнена. Пожалуйста, попробуйте через минуту.
error-prompt-empty = Опишите, что нарисовать, например: /imagine рыжая лиса на снегу.
error-rerun-not-generation = Перезапустить с новыми флагами можно только нарисованные картинки.
error-control-type = «{ $value }» — не тип контроля. Выберите один из: { $choices }.
error-needs-image = Для { $command } нужна картинка: приложите её или ответьте на сообщение с ней.
error-swap-needs-two = Для /swap нужны две картинки: ответьте на картинку и приложите фото лица.
error-chat-admin-only = Менять настройки чата могут только его админы.
error-space-admin-only = Менять настройки сервера могут только участники с правом управлять сервером.
error-admin-only = Это могут только админы бота.
error-grant-usage = Как использовать: /grant платформа:id_пользователя количество
error-settings-usage = Как использовать: /settings КЛЮЧ ЗНАЧЕНИЕ, например /settings ar 3:2 — или /settings reset
error-setting-value = «{ $value }» — недопустимое значение для { $key }. Попробуйте: { $choices }.
error-setting-unknown = Настройки «{ $key }» нет. Доступные настройки: { $choices }.
error-file-not-found = Не удаётся прочитать файл { $path }.

error-flag-value = Для { $flag } укажите { $expected ->
    [integer] целое число
    [number] число
    [ratio] соотношение сторон, например 3:2
    [size] размер, например 768x512
    [name] название
   *[other] значение
}, а не «{ $value }».
error-flag-repeated = { $flag } указан дважды.
error-flag-missing-value = Для { $flag } нужно значение.
error-unknown-flags = Неизвестные флаги: { $flags }. Доступные флаги: { $known }.
error-flag-console-only = { $flag } работает только в консоли. Вместо этого просто приложите картинку.
error-flag-lora = { $flag } принимает НАЗВАНИЕ или НАЗВАНИЕ:ВЕС с весом от -2 до 2 (например, --lora film_grain:0.7), а не «{ $value }».
error-flag-extra-name = Для { $flag } нужно название без символов < > : / \ |, которое не начинается с точки, а не «{ $value }».
error-flag-name-twice = В { $flag } название «{ $value }» указано дважды.
error-flag-too-many = { $flag } принимает не больше { $limit } { $limit ->
    [one] названия
    [few] названий
    [many] названий
   *[other] названий
}.
error-aspect-too-extreme = Соотношение сторон { $value } слишком вытянутое (максимум 4:1).
note-size-rounded = Размер должен быть кратен 8: вместо { $asked } взято { $used }.

error-too-long = Значение { $field } слишком длинное ({ $value }); максимум — { $limit }.
error-too-short = Значение { $field } слишком короткое.
error-too-small = Значение { $field } = { $value } слишком маленькое; минимум — { $limit }.
error-too-large = Значение { $field } = { $value } слишком большое; максимум — { $limit }.
error-not-a-number = Значение { $field } должно быть числом, а не «{ $value }».
error-not-one-of = Значение { $field } должно быть одним из: { $choices }, а не «{ $value }».
error-multiple-of-8 = Значение { $field } = { $value } должно быть кратно 8.
error-too-many-pixels = Размер { $width }×{ $height } слишком большой: всего можно не больше 2048×2048 пикселей.
error-missing = Не указано значение { $field }.
error-invalid = Значение { $field } = «{ $value }» недопустимо.

error-image-too-big = { $what ->
    [mask] Маска слишком большая
    [face] Фото лица слишком большое
   *[other] Картинка слишком большая
} (не больше { $mb } МБ).
error-image-too-many-pixels = { $what ->
    [mask] Маска слишком большая
    [face] Фото лица слишком большое
   *[other] Картинка слишком большая
} ({ $width }×{ $height }); максимум — 4096×4096.
error-image-too-thin = { $what ->
    [mask] У маски
    [face] У фото лица
   *[other] У картинки
} размер { $width }×{ $height } пикселей — слишком узко, с этим не получится работать. Длинная сторона может быть не больше чем в { $ratio } { $ratio ->
    [one] раз
    [few] раза
    [many] раз
   *[other] раза
} длиннее короткой.
error-image-corrupt = Не получается прочитать { $what ->
    [mask] маску
    [face] фото лица
   *[other] картинку
}. Пришлите изображение в формате PNG, JPEG или WebP.
withheld = задержано сервисом
help-console =
    🎨 Я рисую и редактирую картинки. Картинки сохраняются в data/outputs/.
    /imagine <описание> [флаги] — нарисовать картинки. Флаги: --ar 3:2, --seed 7, --n 4, --steps 20, --cfg 7,
      --no размытость, текст, --model НАЗВАНИЕ, --backend НАЗВАНИЕ, --strength 0.6, --style НАЗВАНИЕ, --control canny
    /imagine <описание> --image ПУТЬ перерисовывает картинку с вашего диска; добавьте --mask ПУТЬ (белое = перерисовать), чтобы перерисовать только часть.
    Напишите надпись кнопки (U1, V2, 🔄 Ещё вариант), чтобы нажать её на последнем результате.
    /upscale --image ПУТЬ — увеличить картинку. /swap --face ЛИЦО.png --image КАРТИНКА.png — заменить лицо.
    /settings — ваши настройки · /balance — ваш лимит ({ $daily ->
        [one] { $daily } бесплатная картинка
        [few] { $daily } бесплатные картинки
        [many] { $daily } бесплатных картинок
       *[other] { $daily } бесплатных картинок
    } в день) · /models · /lang · /cancel · /quit

## Что делает каждый флаг (справка, описания опций в Discord: не больше 100 символов)
flag-prompt = Что нарисовать
flag-ar = Соотношение сторон, например 3:2
flag-size = Точный размер, например 768x512 (округляется до кратного 8)
flag-seed = Сид: с тем же сидом получится та же картинка
flag-no = Чего не должно быть на картинке (негативный промпт)
flag-n = Сколько картинок
flag-steps = Шаги сэмплирования (больше — дольше, но детальнее)
flag-cfg = Насколько точно следовать описанию (CFG scale)
flag-model = Модель, которой рисовать
flag-backend = Где рисовать: на этой машине или в сервисе
flag-strength = Насколько сильно изменить картинку (img2img)
flag-style = Стиль из тех, что предлагает бэкенд
flag-control = ControlNet: сохранить контуры, глубину или позу с картинки
flag-scale = Во сколько раз увеличить (2–4)
flag-lora = LoRA: НАЗВАНИЕ или НАЗВАНИЕ:ВЕС
flag-vae = VAE для декодирования
flag-embedding = Эмбеддинг textual inversion для негативного промпта
flag-image = Картинка, с которой работать
flag-mask = Маска для inpainting: белое перерисовывается
flag-face = Лицо, которое нужно подставить
picture-options = Что сделать с этой картинкой? Ответьте на неё /imagine и описанием, чтобы перерисовать, или нажмите кнопку.
button-upscale = ⬆️ Увеличить
button-use-as-face = 🙂 Взять как лицо
face-saved = Сохранено как ваше лицо: ответьте /swap на любую картинку, чтобы подставить его.
models-more = … и ещё { $count }: /models { $backend }
models-none = Нет моделей, подходящих под «{ $search }».
models-backend-header = Модели на { $backend } ({ $count }), страница { $page } из { $pages }:
models-extras = { $kind ->
    [lora] LoRA (--lora НАЗВАНИЕ:0.8)
    [vae] VAE (--vae НАЗВАНИЕ)
   *[other] Эмбеддинги (--embedding НАЗВАНИЕ)
}: { $names }
models-next-page = Дальше: /models { $backend } page { $page }
models-unavailable = { $model } ({ $reason ->
    [not-downloaded] не скачана, интернета здесь нет
    [missing-folder] нет её папки
   *[other] здесь недоступна
})
help-discord =
    🎨 Я рисую и редактирую картинки.
    /imagine prompt: рыжая лиса на снегу — с опциями (ar, seed, steps, n, model…) или флагами в описании: --ar 3:2 --seed 7 --no размытость
    Приложите картинку к /imagine (image, а для перерисовки части ещё mask), или щёлкните правой кнопкой по сообщению с картинкой → Приложения → «Нарисовать по этому», «Увеличить», «Вставить сюда лицо».
    Под результатом: U1… увеличить, V1… вариация, 🔄 ещё вариант (нажать может любой — за свой лимит).
    /upscale image: · /swap face: image: · /settings change: ar 3:2 (админы сервера: server ar 3:2, server pool 50; канал: chat ar 3:2)
    /balance — ваш лимит ({ $daily } бесплатных картинок в день) · /models · /lang · /cancel
