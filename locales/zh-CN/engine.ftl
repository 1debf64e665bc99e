## 本地 diffusers 引擎。

error-model-unavailable = 这里无法使用模型“{ $model }”：{ $reason ->
    [not-downloaded] 模型尚未下载，且无法连接 Hugging Face。
    [missing-folder] 模型文件夹不存在。
    [not-a-folder] 模型来源是单个文件，需要的是 diffusers 模型文件夹。
    [incomplete-folder] 模型文件夹缺少部分文件。
    [bad-files] 模型文件无法加载。
    [unknown-model] 没有这个模型。
    [no-controlnet] 该模型没有这种 ControlNet。
   *[other] { $reason }。
} 在没有网络的机器上，可以运行“python -m bot demo-model”生成演示模型，并使用 --model demo（它只会画出噪点）。
error-out-of-memory = GPU 显存不足。请减小尺寸或张数（--n）。
error-local-input-gone = 这个任务所需的{ $what ->
    [mask] 蒙版
   *[other] 图片
}已不在存储中，请重新发送。
withheld-nsfw = 模型的安全检查器
