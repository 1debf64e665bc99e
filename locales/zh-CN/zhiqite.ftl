# 智启特 AIGC 图片服务（engine/vendors/zhiqite.py）。每条错误都带 $backend。

error-zhiqite-auth = 智启特拒绝了本机器人的凭证（HTTP { $status }），请联系机器人管理员。
error-zhiqite-quota = 机器人购买的智启特调用次数已经用完（HTTP { $status }）。请告诉机器人的管理员，或用 --backend 换一个后端。
error-zhiqite-throttled = 智启特暂时限制了机器人的调用频率（HTTP { $status }）。请稍等片刻再试。
error-zhiqite-needs-public-url = 只有在机器人为图片配置了公网地址（IMAGEBOT_PUBLIC_BASE_URL 设置）时，智启特才能做 { $kind } 任务。请告诉机器人的管理员。
error-zhiqite-rejected = 智启特拒绝了请求（代码 { $code }）：{ $detail }
error-zhiqite-failed = 智启特未能生成图片：{ $detail }
error-zhiqite-input-too-large = 智启特只能放大不超过 { $limit }×{ $limit } 像素的图片，这张是 { $width }×{ $height }。

## 图片被拦截的原因（显示在 result-withheld 中）

withheld-zhiqite-deleted = 因违反内容规则被智启特删除
withheld-zhiqite-hidden = 未通过智启特的内容审核
