# Инструменты для картинок: увеличение и замена лица (engine/tools).

error-no-face = { $which ->
    [source] На фото, с которого нужно взять лицо, лица не нашлось. Пришлите чёткое фото одного человека анфас.
   *[target] На картинке, которую нужно изменить, не нашлось лица. Лица должны смотреть в камеру и не быть слишком мелкими.
}
error-upscale-too-large = Картинка { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) } слишком большая для увеличения ×{ $scale }. Для ×{ $scale } она может быть не больше примерно { NUMBER($max_side, useGrouping: 0) }×{ NUMBER($max_side, useGrouping: 0) }; попробуйте масштаб поменьше или картинку поменьше.
error-tool-bad-image = { $which ->
    [source] Не получается прочитать фото с лицом. Пришлите его в формате PNG, JPEG или WebP.
    [target] Не получается прочитать картинку, которую нужно изменить. Пришлите её в формате PNG, JPEG или WebP.
   *[other] Не получается прочитать эту картинку. Пришлите её в формате PNG, JPEG или WebP.
}
error-tool-image-too-large = Картинка { NUMBER($width, useGrouping: 0) }×{ NUMBER($height, useGrouping: 0) } слишком большая для замены лица. Пришлите картинку поменьше.
