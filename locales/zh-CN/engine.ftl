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
}{ $reason ->
    [not-downloaded] {" "}在没有网络的机器上，可以运行“make demo-model”生成演示模型，并使用 --model demo（它只会画出噪点）。
   *[other] {""}
}
error-out-of-memory = GPU 显存不足。请减小尺寸或张数（--n）。
error-local-input-gone = 这个任务所需的{ $what ->
    [mask] 蒙版
   *[other] 图片
}已不在存储中，请重新发送。
withheld-nsfw = 模型的安全检查器

## 附加模型：LoRA、VAE 和 embedding（$what 为 lora、vae 或 embedding；$value 为所填名称）

error-extra-unsupported = { $backend } 不能使用{ $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] embedding
    }（你填写了“{ $value }”）。请去掉 --{ $what }，或用 --backend 换一个后端。
error-extra-unknown = { $backend } 没有名为“{ $value }”的{ $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] embedding
    }。最接近的有：{ $choices }
error-extra-none = { $backend } 没有可选的{ $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] embedding
    }，因此无法使用“{ $value }”。
error-local-lora-needs-peft = 本地引擎无法加载 LoRA：没有安装 peft 软件包。请告诉机器人的管理员。
error-local-lora-bad = 无法把 LoRA“{ $value }”加载到 { $model }（可能是为其他类型模型制作的 LoRA，或文件已损坏）。
