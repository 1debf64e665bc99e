## Discord 适配器：命令与右键菜单的名称、选项说明、弹窗，以及适配器自己的提示。
## 命令名：小写、无空格、最多 32 个字符。说明：最多 100 个字符。菜单名：最多 32 个字符。

discord-name-imagine = 画图
discord-name-swap = 换脸
discord-name-upscale = 放大
discord-name-settings = 设置
discord-name-balance = 余额
discord-name-models = 模型
discord-name-lang = 语言
discord-name-cancel = 取消
discord-name-help = 帮助
discord-name-grant = 发放额度
discord-name-stats = 统计
discord-name-pause = 暂停
discord-name-resume = 恢复

discord-menu-imagine = 以此图生成
discord-menu-upscale = 放大
discord-menu-swap = 把脸换到这张图上

discord-option-change = 例如 “ar 3:2”、“chat ar 3:2”、“server pool 50” 或 “reset”
discord-option-language = 用哪种语言回复
discord-option-job = 要取消的任务（不填则取消你的全部任务）
discord-option-user = 谁获得额度
discord-option-amount = 多少额度（负数表示收回）
discord-option-target = 要换上这张脸的图片

discord-modal-imagine = 以这张图生成
discord-modal-prompt = 想把它变成什么
discord-modal-prompt-hint = 例如：水彩画 --strength 0.5（也可以写参数）
discord-modal-swap = 把一张脸换到这张图上
discord-modal-face = 人脸照片

discord-cannot-post = 我无法在这个频道发图片。服务器管理员可以给我这些权限：查看频道、发送消息（在子区里是“在子区中发送消息”）和附加文件。
discord-no-picture = 那条消息里没有我能用的图片。
discord-file-too-big = 这个文件太大了（最多 { $size }）。
discord-download-failed = 我没能从 Discord 取到那张图片，请再试一次。
discord-queued = ⏳ 已排队 — 图片会出现在这里：{ $link }
discord-reencoded = （已重新编码，以符合本聊天 { $size } 的上传上限）
