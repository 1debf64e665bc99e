## imagebot 核心消息（处理器、控制台）。占位符写作 { $name }。

help =
    🎨 我可以生成和编辑图片。
    /imagine <描述> [参数] — 生成图片。参数：--ar 3:2、--seed 7、--n 4、--steps 20、--cfg 7、
      --no 模糊, 文字、--model 名称、--backend 名称、--strength 0.6、--style 名称、--control canny
    发送带 /imagine 说明的照片，或用 /imagine 回复一张照片，即可重绘它。
    只带参数（如 --seed 9）回复我的结果，会按新参数重新生成。
    /upscale — 回复一张图片来放大。/swap — 回复一张图片并附上人脸照片来换脸。
    在群里，管理员可以用 /settings chat ar 3:2 设置群默认值，用 /settings chat pool 50 设置每日共享额度。
    /settings — 默认设置 · /balance — 额度（每天免费 { $daily } 张）· /models · /lang · /cancel
cmd-imagine = 根据描述生成图片
cmd-swap = 把人脸换到图片里
cmd-upscale = 放大图片
cmd-settings = 默认尺寸、模型、步数等
cmd-balance = 免费额度和积分
cmd-models = 可用的模型
cmd-lang = 切换语言
cmd-cancel = 取消正在进行的任务
cmd-help = 使用说明
cmd-grant = 发放积分（管理员）
cmd-stats = 机器人统计（管理员）
cmd-pause = 暂停接收新任务（管理员）
cmd-resume = 恢复接收新任务（管理员）

console-welcome = imagebot 控制台。输入 /help 查看命令，/quit 退出。后端：{ $backends }。你的用户名是“{ $user }”（登录名）。

## 任务状态
status-queued = ⏳ 排队中 — 第 { $position } 位
status-starting = 🎨 开始生成…
status-running = 🎨 { $bar } { $percent }%（{ $step }/{ $total }）
status-eta = · 约剩 { $seconds } 秒
job-failed = ❌ { $reason }{ $refunded ->
    [0] {""}
   *[other] {" "}它占用的 { $refunded } 张额度已退回。
}
job-cancelled = 🚫 已取消。{ $refunded ->
    [0] {""}
   *[other] {" "}它占用的 { $refunded } 张额度已退回。
}
result-withheld = ⚠️ 有 { $count } 张图片被服务方拦截（{ $reason }），未扣费。

## 结果
caption-params = 种子 { $seed } · { $steps } 步 · cfg { $cfg } · { $width }×{ $height } · { $model }
caption-faceswap = 换脸
caption-upscale = 已放大
button-reroll = 🔄 重新生成
button-cancel = ✖ 取消

## 按钮
press-invalid = 这个按钮在这里已失效。
press-not-yours = 只有发起这张图片的人可以这样做。
press-queued = 马上处理！
settings-saved = 已保存。
cancel-too-late = 来不及取消了：图片正在发送。

## 命令
settings-show =
    ⚙️ 你的设置
    后端：{ $backend }
    模型：{ $model }
    宽高比：{ $ar }
    步数：{ $steps }
    每次张数：{ $n }
    语言：{ $lang }
    以文件发送原图：{ $originals }
    修改示例：/settings ar 3:2 · /settings model 名称 · /settings steps 20 · /settings n 2 · /settings reset
yes = 是
no = 否
balance =
    💳 今日剩余免费张数：{ $free } / { $daily }
    积分：{ $credits }
    进行中任务占用：{ $reserved }（{ $jobs } 个未完成任务）
balance-chat-pool = 👥 本群共享额度：今日剩余 { $free } / { $daily } 张（优先于你自己的额度使用）。
models-header = 可以用 --model 名称 选择的模型：
models-line = • { $backend }：{ $models }
lang-set = 语言已设为 { $lang }。
lang-choose = 请选择语言：
cancel-nothing = 你没有正在进行的任务。
cancel-done = 已取消 { $count } 个任务。
grant-done = 已给 { $user } 发放 { $amount } 积分，现有 { $credits }。
stats = 用户 { $users } · 排队 { $queued } · 运行 { $running } · 完成 { $done } · 失败 { $failed } · 取消 { $cancelled } · 内存队列 { $waiting }
paused = 已暂停接收新任务。
resumed = 已恢复接收新任务。

## 错误
error-internal = 我们这边出了点问题，没有扣费。
error-job-crashed = 这个任务多次导致机器人中断，已放弃。
error-job-timeout = 任务超过 { $seconds } 秒，已停止。
error-backend-cannot = 后端 { $backend } 不支持 { $kind } 任务。
error-backend-unknown = 没有名为“{ $backend }”的后端。可选：{ $choices }。
error-backend-no-result = 后端 { $backend } 结束了，但没有返回图片。
error-model-unknown = { $backend } 上没有模型“{ $model }”。可选：{ $choices }。
error-paused = 机器人正在维护，请稍后再试。
error-quota = { $credits ->
    [0] 这需要 { $needed } 张免费额度，你今天还剩 { $free } 张（每天 { $daily } 张）。可以减少张数（--n）或明天再来。
   *[other] 这需要 { $needed } 点，你只有 { $available } 点（今天免费剩 { $free } 张，积分 { $credits }）。可以减少张数（--n）。
}
error-too-many-queued = 你已有 { $count } 个任务在等待，请等其中一个完成。
error-queue-full = 队列已满，请一分钟后再试。
error-prompt-empty = 请描述想要的图片，例如：/imagine 雪地里的红狐狸。
error-rerun-not-generation = 只有生成的图片可以用新参数重新生成。
error-control-type = “{ $value }”不是控制类型。可选：{ $choices }。
error-needs-image = { $command } 需要一张图片：请附上或回复一张图片。
error-swap-needs-two = /swap 需要两张图片：回复目标图片，并附上人脸照片。
error-chat-admin-only = 只有群管理员可以修改群默认设置。
error-admin-only = 只有机器人管理员可以这样做。
error-grant-usage = 用法：/grant 平台:用户ID 数量
error-settings-usage = 用法：/settings 键 值，例如 /settings ar 3:2 —— 或 /settings reset
error-setting-value = “{ $value }”不是有效的 { $key }。可以试试：{ $choices }。
error-setting-unknown = 没有设置项“{ $key }”。可用设置：{ $choices }。
error-file-not-found = 无法读取文件 { $path }。

error-flag-value = { $flag } 需要{ $expected ->
    [integer] 一个整数
    [number] 一个数字
    [ratio] 像 3:2 这样的宽高比
    [size] 像 768x512 这样的尺寸
    [name] 一个名称
   *[other] 一个值
}，而不是“{ $value }”。
error-flag-repeated = { $flag } 重复出现了。
error-flag-missing-value = { $flag } 需要一个值。
error-unknown-flags = 未知参数：{ $flags }。可用参数：{ $known }。
error-flag-console-only = { $flag } 只能在控制台使用，请直接附上图片。
error-flag-lora = { $flag } 的写法是 名称 或 名称:权重（权重在 -2 到 2 之间，例如 --lora film_grain:0.7），而不是“{ $value }”。
error-flag-extra-name = { $flag } 需要一个不含 < > : / \ |、也不以点开头的名称，而不是“{ $value }”。
error-flag-name-twice = { $flag } 把“{ $value }”写了两次。
error-flag-too-many = { $flag } 最多只能写 { $limit } 个名称。
error-aspect-too-extreme = 宽高比 { $value } 太极端了（最多 4:1）。
note-size-rounded = 尺寸须为 8 的倍数：{ $asked } 已改为 { $used }。

error-too-long = { $field } 太长了（{ $value }），上限是 { $limit }。
error-too-short = { $field } 太短了。
error-too-small = { $field } = { $value } 太小，最小为 { $limit }。
error-too-large = { $field } = { $value } 太大，最大为 { $limit }。
error-not-a-number = { $field } 必须是数字，而不是“{ $value }”。
error-not-one-of = { $field } 必须是 { $choices } 之一，而不是“{ $value }”。
error-multiple-of-8 = { $field } = { $value } 必须是 8 的倍数。
error-too-many-pixels = { $width }×{ $height } 太大了，总像素最多 2048×2048。
error-missing = 缺少 { $field }。
error-invalid = { $field } = “{ $value }”无效。

error-image-too-big = { $what ->
    [mask] 蒙版
    [face] 人脸照片
   *[other] 图片
}太大了（最多 { $mb } MB）。
error-image-too-many-pixels = { $what ->
    [mask] 蒙版
    [face] 人脸照片
   *[other] 图片
}尺寸太大（{ $width }×{ $height }），最多 4096×4096。
error-image-too-thin = { $what ->
    [mask] 蒙版
    [face] 人脸照片
   *[other] 图片
}是 { $width }×{ $height } 像素，太细长了：长边最多只能是短边的 { $ratio } 倍。
error-image-corrupt = 无法读取这张{ $what ->
    [mask] 蒙版
    [face] 人脸照片
   *[other] 图片
}。请发送 PNG、JPEG 或 WebP 图片。
withheld = 被服务方拦截
error-space-admin-only = 只有能管理本服务器的成员才能修改服务器默认值。
error-storage-busy = 机器人暂时繁忙（数据库正被占用）。请再发一次；没有扣除任何额度。
error-delivery-failed = 图片已生成，但无法发送到这个聊天。
stats-lane = • 通道 { $lane }：等待 { $waiting }，运行 { $running }/{ $capacity }
help-console =
    🎨 我可以生成和编辑图片。图片保存在 data/outputs/ 下。
    /imagine <描述> [参数] — 生成图片。参数：--ar 3:2、--seed 7、--n 4、--steps 20、--cfg 7、
      --no 模糊, 文字、--model 名称、--backend 名称、--strength 0.6、--style 名称、--control canny
    /imagine <描述> --image 路径 重绘磁盘上的图片；再加 --mask 路径（白色 = 重绘）即可局部重绘。
    输入按钮的文字（U1、V2、🔄 重新生成）即可按下最新结果上的按钮。
    /upscale --image 路径 — 放大图片。/swap --face 人脸.png --image 图片.png — 换脸。
    /settings — 默认设置 · /balance — 额度（每天免费 { $daily } 张）· /models · /lang · /cancel · /quit

## 各参数的说明（帮助、Discord 选项说明：最多 100 字）
flag-prompt = 要画什么
flag-ar = 宽高比，例如 3:2
flag-size = 精确尺寸，例如 768x512（取 8 的倍数）
flag-seed = 种子：同一种子画出同一张图
flag-no = 不想要的内容（反向提示词）
flag-n = 生成几张
flag-steps = 采样步数（越多越慢越细）
flag-cfg = 贴合提示词的程度（CFG）
flag-model = 使用的模型
flag-backend = 在哪里生成：本机或某个服务
flag-strength = 改动图片的幅度（图生图）
flag-style = 后端提供的风格
flag-control = ControlNet：保留图片的轮廓、深度或姿势
flag-scale = 放大倍数（2–4）
flag-lora = LoRA 名称 或 名称:权重
flag-vae = 解码用的 VAE
flag-embedding = 用于反向提示词的文本反演嵌入
flag-image = 要处理的图片
flag-mask = 局部重绘遮罩：白色部分重绘
flag-face = 要换上的人脸
console-resumed = ↻ 正在继续上次未完成的 { $count } 个任务。
console-default-model-missing = ⚠️ 这里无法使用默认模型“{ $model }”：它尚未下载，且无法连接 Hugging Face。可以运行“make demo-model”生成演示模型并使用 --model demo（它只会画出噪点），或设置 IMAGEBOT_DEFAULT_MODEL=demo。
error-control-not-on-model = 模型 { $model } 没有“{ $value }”ControlNet。它有：{ $choices }。
picture-options = 要怎么处理这张图片？用 /imagine 加上描述回复它即可重绘，或者按下按钮。
button-upscale = ⬆️ 放大
button-use-as-face = 🙂 用作人脸
face-saved = 已保存为你的人脸：用 /swap 回复任意图片即可换上。
models-more = … 还有 { $count } 个：/models { $backend }
models-none = 没有匹配“{ $search }”的模型。
models-backend-header = { $backend } 上的模型（{ $count } 个），第 { $page }/{ $pages } 页：
models-extras = { $kind ->
    [lora] LoRA（--lora 名称:0.8）
    [vae] VAE（--vae 名称）
   *[other] 嵌入（--embedding 名称）
}：{ $names }
models-next-page = 更多：/models { $backend } page { $page }
models-unavailable = { $model }（{ $reason ->
    [not-downloaded] 尚未下载，这里无法联网
    [missing-folder] 文件夹不存在
   *[other] 这里无法使用
}）
help-discord =
    🎨 我可以生成和编辑图片。
    /imagine prompt: 雪地里的红狐狸 — 可填选项（ar、seed、steps、n、model…），也可以在描述里写参数：--ar 3:2 --seed 7 --no 模糊
    给 /imagine 附上图片（image，局部重绘再加 mask）即可重绘它；或者右键带图片的消息 → 应用 → 以此图生成、放大、把脸换到这张图上。
    结果下方：U1… 放大，V1… 变体，🔄 重新生成（任何人都能按，用自己的额度）。
    /upscale image: · /swap face: image: · /settings change: ar 3:2（服务器管理员：server ar 3:2、server pool 50；频道：chat ar 3:2）
    /balance — 额度（每天免费 { $daily } 张）· /models · /lang · /cancel
