## 队列后面的 GPU 工作进程（IMAGEBOT_QUEUE_URL）

status-retrying-gpu = 🔁 运行此任务的 GPU 已失联：正在换一块 GPU 重试（第 { $attempt } 次，共 { $attempts } 次）…
error-no-worker = 还没有 GPU 工作进程在 { $backend } 上提供 { $kind } 任务。请告诉机器人的管理员。
error-no-worker-model = 没有 GPU 工作进程在 { $backend } 上有模型“{ $model }”。请看 /models，或用 --model 换一个。
error-no-worker-alive = 能运行此任务的 GPU 工作进程已有 { $seconds } 秒不在线，任务已停止。
error-worker-lost = 运行此任务的 GPU 已失联 { $attempts } 次，任务已停止。
error-queue-too-large = 此任务的图片太大，无法交给 GPU 工作进程（{ $size_mb } MB，上限 { $limit_mb } MB）。请减小尺寸或张数。
stats-worker = 🖥 { $name }（{ $state ->
        [up] 在线
        [stopped] 已停止
       *[lost] 失联
    }）：{ $backends } · 已加载 { $loaded } · 完成 { $done } · 忙 { $busy }/{ $slots } · { $seen } 秒前
stats-workers-none = 🖥 还没有 GPU 工作进程报到。
