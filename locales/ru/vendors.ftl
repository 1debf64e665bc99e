# Сторонние сервисы (engine/vendors): ошибки и заметки о подменённых значениях.
# В каждой ошибке есть $backend — название бэкенда.


## Соединение и ответы

error-vendor-timeout = { $backend } не ответил вовремя. Пожалуйста, попробуйте позже.
error-vendor-unavailable = { $backend } сейчас недоступен. Пожалуйста, попробуйте позже.
error-vendor-rejected = { $backend } отклонил запрос (HTTP { $status }).
error-vendor-rate-limited = На { $backend } сейчас слишком много запросов. Подождите немного и попробуйте снова.
error-vendor-bad-answer = { $backend } прислал ответ, который бот не может прочитать.
error-vendor-bad-image = { $backend } прислал картинку, которую бот не может открыть.
error-vendor-image-too-large = { $backend } прислал слишком большую картинку.

## Задачи, которые сервис не умеет выполнять ($reason выбирает фразу)

error-vendor-cannot = { $reason ->
    [prompt-too-long] { $backend } принимает описания не длиннее { $limit } { $limit ->
        [one] символа
        [few] символов
        [many] символов
       *[other] символов
    }, а в вашем — { $value }. Пожалуйста, сократите его.
    [style] У { $backend } нет стиля «{ $value }». Стили: { $choices }
    [model] У { $backend } нет модели «{ $value }». Модели: { $choices }
    [kind] { $backend } не умеет выполнять задачи типа { $value }.
   *[other] { $backend } не может выполнить эту задачу.
}

## Заметки рядом с результатом

vendor-note-mapped = { $backend } не поддерживает { $what ->
        [size] размер
        [n] количество картинок
        [steps] число шагов
        [cfg] силу следования описанию (cfg)
        [strength] силу изменения
        [style] стиль
        [seed] сид
        [negative_prompt] негативный промпт
        [model] модель
       *[other] { $what }
    } { $asked }, поэтому использовал { $used }.
vendor-note-ignored = { $backend } не поддерживает { $what ->
        [size] размер
        [n] количество картинок
        [steps] число шагов
        [cfg] силу следования описанию (cfg)
        [strength] силу изменения
        [style] стиль
        [seed] сид
        [negative_prompt] негативный промпт
        [model] модель
       *[other] { $what }
    }, поэтому этот параметр пропущен.

## Ошибки сервисов с их собственными словами ($detail уже очищен и сокращён)

error-paint4-failed = paint4.art не смог нарисовать картинку (код { $code }): { $detail }
error-aiimage-failed = Сервис картинок отклонил запрос: { $detail }
error-sdapi-failed = Сервер Stable Diffusion не смог нарисовать картинку: { $detail }

## Коды ответов jumdata ($code — число)

error-jumdata-task-unknown = jumdata больше не знает об этой задаче (код { $code }).
error-jumdata-moderation = jumdata заблокировал описание по своим правилам контента (код { $code }). Пожалуйста, переформулируйте его.
error-jumdata-bad-parameter = jumdata отклонил один из параметров запроса (код { $code }).
error-jumdata-misconfigured = Бот неправильно настроен для jumdata (код { $code }). Пожалуйста, сообщите админу бота.
error-jumdata-wrong-path = Неверный адрес jumdata; пожалуйста, сообщите админу бота (код { $code }).
error-jumdata-maintenance = На jumdata идут технические работы (код { $code }). Пожалуйста, попробуйте позже.
error-jumdata-not-enabled = Сервис рисования jumdata не подключён для этого бота; пожалуйста, сообщите админу бота (код { $code }).
error-jumdata-account-disabled = Аккаунт бота в jumdata отключён; пожалуйста, сообщите админу бота (код { $code }).
error-jumdata-api-disabled = Сервис рисования jumdata выключен (код { $code }).
error-jumdata-quota = Бот израсходовал свой лимит в jumdata (код { $code }). Пожалуйста, попробуйте позже.
error-jumdata-ip-not-allowed = jumdata не принимает запросы с адреса этого сервера; пожалуйста, сообщите админу бота (код { $code }).
error-jumdata-too-frequent = На jumdata сейчас слишком много запросов (код { $code }). Подождите немного и попробуйте снова.
error-jumdata-timeout = jumdata не ответил вовремя (код { $code }). Пожалуйста, попробуйте ещё раз.
error-jumdata-other = jumdata не смог нарисовать картинку (код { $code }).
