## GPU-воркеры за очередью (IMAGEBOT_QUEUE_URL)

status-retrying-gpu = 🔁 GPU, на котором шла эта задача, потерян: пробуем на другом GPU (попытка { $attempt } из { $attempts })…
error-no-worker = Пока ни один GPU-воркер не выполняет задачи { $kind } на { $backend }. Сообщите администратору бота.
error-no-worker-model = Ни у одного GPU-воркера нет модели «{ $model }» на { $backend }. Посмотрите /models или выберите другую через --model.
error-no-worker-alive = GPU-воркера, способного выполнить эту задачу, нет в сети уже { $seconds } с, поэтому она остановлена.
error-worker-lost = GPU, на которых шла эта задача, терялись { $attempts } раз(а), поэтому она остановлена.
error-queue-too-large = Картинки этой задачи слишком велики для передачи GPU-воркеру ({ $size_mb } МБ при пределе { $limit_mb } МБ). Уменьшите размер или число картинок.
stats-worker = 🖥 { $name } ({ $state ->
        [up] в сети
        [stopped] остановлен
       *[lost] потерян
    }): { $backends } · загружено: { $loaded } · готово: { $done } · занято { $busy }/{ $slots } · был { $seen } с назад
stats-workers-none = 🖥 Ни один GPU-воркер ещё не объявился.
