## Локальный движок diffusers.

error-model-unavailable = Модель «{ $model }» здесь недоступна: { $reason ->
    [not-downloaded] она не скачана, а до Hugging Face Hub не достучаться.
    [missing-folder] её папки не существует.
    [not-a-folder] её источник — один файл, а нужна папка модели diffusers.
    [incomplete-folder] в её папке не хватает части файлов модели.
    [bad-files] её файлы не удаётся загрузить.
    [unknown-model] такой модели нет.
    [no-controlnet] у неё нет ControlNet такого типа.
   *[other] { $reason }.
}{ $reason ->
    [not-downloaded] {" "}На машине без интернета соберите демо-модель командой «make demo-model» и укажите --model demo (она рисует шум).
   *[other] {""}
}
error-out-of-memory = На GPU закончилась память. Попробуйте размер поменьше или меньше картинок (--n).
error-local-input-gone = { $what ->
    [mask] Маска
   *[other] Картинка
} для этой задачи больше не хранится. Пожалуйста, пришлите её ещё раз.
withheld-nsfw = сработал фильтр безопасности модели

## Дополнения: LoRA, VAE и эмбеддинги ($what — lora, vae или embedding; $value — запрошенное название)

error-extra-unsupported = { $backend } не поддерживает { $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] эмбеддинги
    } (вы запросили «{ $value }»). Уберите --{ $what } или выберите другой бэкенд через --backend.
error-extra-unknown = У { $backend } нет { $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] эмбеддинга
    } «{ $value }». Ближайшие: { $choices }
error-extra-none = У { $backend } нет { $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] эмбеддингов
    } на выбор, поэтому «{ $value }» использовать нельзя.
error-local-lora-needs-peft = Локальный движок не может загружать LoRA: не установлен пакет peft. Пожалуйста, сообщите админу бота.
error-local-lora-bad = Не удалось загрузить LoRA «{ $value }» в { $model } (это LoRA для другого типа моделей или файл повреждён).
