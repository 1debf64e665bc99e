## GPU workers behind the queue (IMAGEBOT_QUEUE_URL)

status-retrying-gpu = 🔁 The GPU running this job was lost: retrying on another GPU (attempt { $attempt } of { $attempts })…
error-no-worker = No GPU worker offers { $kind } jobs on { $backend } yet. Please tell the bot's admin.
error-no-worker-model = No GPU worker has the model “{ $model }” on { $backend }. See /models, or choose another one with --model.
error-no-worker-alive = No GPU worker that can run this job has been online for { $seconds }s, so it was stopped.
error-worker-lost = The GPUs running this job were lost { $attempts } times, so it was stopped.
error-queue-too-large = This job's pictures are too large to pass to a GPU worker ({ $size_mb } MB; the limit is { $limit_mb } MB). Try a smaller size or fewer pictures.
stats-worker = 🖥 { $name } ({ $state ->
        [up] up
        [stopped] stopped
       *[lost] lost
    }): { $backends } · loaded { $loaded } · { $done } done · { $busy }/{ $slots } busy · seen { $seen }s ago
stats-workers-none = 🖥 No GPU worker has announced itself yet.
