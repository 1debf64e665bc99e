# Image tools: upscale and face swap (engine/tools).

error-no-face = { $which ->
    [source] I could not find a face in the face picture. Send a clear, front-facing photo of one face.
   *[target] I could not find a face in the picture to change. The faces should look at the camera and not be too small.
}
error-upscale-too-large = The picture is { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) }, too large to enlarge ×{ $scale }. For ×{ $scale } it can be at most about { NUMBER($max_side, useGrouping: 0) }×{ NUMBER($max_side, useGrouping: 0) }; try a smaller scale or a smaller picture.
error-tool-bad-image = { $which ->
    [source] I could not read the face picture. Send it as a PNG, JPEG or WebP image.
    [target] I could not read the picture to change. Send it as a PNG, JPEG or WebP image.
   *[other] I could not read that picture. Send it as a PNG, JPEG or WebP image.
}
error-tool-image-too-large = The picture is { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) }, which is too large for face swap. Send a smaller one.
