# 图像工具：放大与换脸（engine/tools）。

error-no-face = { $which ->
    [source] 在人脸图片中没有找到人脸。请发送一张只有一张脸、正面清晰的照片。
   *[target] 在要修改的图片中没有找到人脸。人脸需要正对镜头，且不能太小。
}
error-upscale-too-large = 图片尺寸为 { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) }，太大，无法放大 ×{ $scale }。放大 ×{ $scale } 时图片最大约为 { NUMBER($max_side, useGrouping: 0) }×{ NUMBER($max_side, useGrouping: 0) }；请选择更小的倍数或更小的图片。
error-tool-bad-image = { $which ->
    [source] 无法读取人脸图片。请以 PNG、JPEG 或 WebP 格式发送。
    [target] 无法读取要修改的图片。请以 PNG、JPEG 或 WebP 格式发送。
   *[other] 无法读取这张图片。请以 PNG、JPEG 或 WebP 格式发送。
}
error-tool-image-too-large = 图片尺寸为 { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) }，对换脸来说太大了。请发送一张更小的图片。
