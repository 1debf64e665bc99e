# Сервис картинок zhiqite AIGC (engine/vendors/zhiqite.py). В каждой ошибке есть $backend.

error-zhiqite-auth = zhiqite не принял учётные данные бота (HTTP { $status }); пожалуйста, сообщите админу бота.
error-zhiqite-quota = Бот израсходовал все оплаченные запросы к zhiqite (HTTP { $status }). Пожалуйста, сообщите админу бота или выберите другой бэкенд через --backend.
error-zhiqite-throttled = zhiqite сейчас ограничивает, как часто бот может к нему обращаться (HTTP { $status }). Подождите немного и попробуйте снова.
error-zhiqite-needs-public-url = zhiqite может выполнять задачи типа { $kind }, только если у бота есть публичный веб-адрес для картинок (настройка IMAGEBOT_PUBLIC_BASE_URL). Пожалуйста, сообщите админу бота.
error-zhiqite-rejected = zhiqite отклонил запрос (код { $code }): { $detail }
error-zhiqite-failed = zhiqite не смог нарисовать картинку: { $detail }
error-zhiqite-input-too-large = zhiqite увеличивает картинки не больше { NUMBER($limit, useGrouping: 0) }×{ NUMBER($limit, useGrouping: 0) } пикселей, а эта — { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) }.

## Почему картинку не выдали (показывается внутри result-withheld)

withheld-zhiqite-deleted = удалено zhiqite за нарушение правил контента
withheld-zhiqite-hidden = скрыто проверкой контента zhiqite
