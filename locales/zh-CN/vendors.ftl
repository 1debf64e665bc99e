# 第三方绘图服务（engine/vendors）：错误和参数调整说明。
# 每条错误都有 $backend（服务名）。


## 连接与应答

error-vendor-timeout = { $backend } 没有按时应答，请稍后再试。
error-vendor-unavailable = { $backend } 暂时不可用，请稍后再试。
error-vendor-rejected = { $backend } 拒绝了请求（HTTP { $status }）。
error-vendor-rate-limited = { $backend } 当前请求过多，请稍等片刻再试。
error-vendor-bad-answer = { $backend } 返回的内容无法识别。
error-vendor-bad-image = { $backend } 返回的图片无法打开。
error-vendor-image-too-large = { $backend } 返回的图片过大。

## 服务无法完成的任务（由 $reason 选择句子）

error-vendor-cannot = { $reason ->
    [prompt-too-long] { $backend } 的提示词最多 { $limit } 个字，你的有 { $value } 个字，请缩短。
    [style] { $backend } 没有“{ $value }”风格。可用风格：{ $choices }
    [model] { $backend } 没有“{ $value }”模型。可用模型：{ $choices }
    [kind] { $backend } 不支持 { $value } 任务。
   *[other] { $backend } 无法完成这个任务。
}

## 结果旁的说明

vendor-note-mapped = { $backend } 不支持{ $what ->
        [size] 尺寸
        [n] 图片数量
        [steps] 步数
        [cfg] 提示词相关度（cfg）
        [strength] 重绘强度
        [style] 风格
        [seed] 随机种子
        [negative_prompt] 反向提示词
        [model] 模型
       *[other] { $what }
    } { $asked }，已改用 { $used }。
vendor-note-ignored = { $backend } 不支持设置{ $what ->
        [size] 尺寸
        [n] 图片数量
        [steps] 步数
        [cfg] 提示词相关度（cfg）
        [strength] 重绘强度
        [style] 风格
        [seed] 随机种子
        [negative_prompt] 反向提示词
        [model] 模型
       *[other] { $what }
    }，已忽略。

## 带有服务方原话的失败（$detail 已清理并截短）

error-paint4-failed = paint4.art 未能生成图片（代码 { $code }）：{ $detail }
error-aiimage-failed = 绘图服务拒绝了请求：{ $detail }
error-sdapi-failed = Stable Diffusion 服务器未能生成图片：{ $detail }

## 聚美智数（jumdata）返回码（$code 为数字）

error-jumdata-task-unknown = 聚美智数找不到这个任务了（代码 { $code }）。
error-jumdata-moderation = 提示词未通过聚美智数的内容审核（代码 { $code }），请修改措辞。
error-jumdata-bad-parameter = 聚美智数认为请求参数有误（代码 { $code }）。
error-jumdata-misconfigured = 机器人的 jumdata 设置有误（代码 { $code }），请告诉机器人的管理员。
error-jumdata-wrong-path = 聚美智数接口地址不正确，请联系机器人管理员（代码 { $code }）。
error-jumdata-maintenance = 聚美智数正在维护（代码 { $code }），请稍后再试。
error-jumdata-not-enabled = 本机器人尚未开通聚美智数绘画接口，请联系管理员（代码 { $code }）。
error-jumdata-account-disabled = 本机器人的聚美智数账号已停用，请联系管理员（代码 { $code }）。
error-jumdata-api-disabled = 聚美智数绘画接口已停用（代码 { $code }）。
error-jumdata-quota = 本机器人的聚美智数调用次数已超限（代码 { $code }），请稍后再试。
error-jumdata-ip-not-allowed = 聚美智数不接受来自本服务器地址的请求，请联系管理员（代码 { $code }）。
error-jumdata-too-frequent = 聚美智数请求过于频繁（代码 { $code }），请稍等片刻再试。
error-jumdata-timeout = 聚美智数请求超时（代码 { $code }），请再试一次。
error-jumdata-other = 聚美智数未能生成图片（代码 { $code }）。
