## The local diffusers engine.

error-model-unavailable = The model “{ $model }” cannot be used here: { $reason ->
    [not-downloaded] it is not downloaded and the Hugging Face hub cannot be reached.
    [missing-folder] its folder does not exist.
    [not-a-folder] its source is a single file; a diffusers model folder is needed.
    [incomplete-folder] its folder lacks some of the model's files.
    [bad-files] its files cannot be loaded.
    [unknown-model] there is no such model.
    [no-controlnet] it has no ControlNet of that type.
   *[other] { $reason }.
}{ $reason ->
    [not-downloaded] {" "}On a machine without internet, build the demo model with “make demo-model” and use --model demo (it paints noise).
   *[other] {""}
}
error-out-of-memory = The GPU ran out of memory. Try a smaller size or fewer pictures (--n).
error-local-input-gone = The { $what ->
    [mask] mask
   *[other] picture
} for this job is no longer stored. Please send it again.
withheld-nsfw = the model's safety checker

## Extras: LoRAs, VAEs and embeddings ($what is lora, vae or embedding; $value the name asked)

error-extra-unsupported = { $backend } cannot use { $what ->
        [lora] LoRAs
        [vae] a VAE
       *[embedding] embeddings
    } (you asked for “{ $value }”). Leave out --{ $what }, or choose another backend with --backend.
error-extra-unknown = { $backend } has no { $what ->
        [lora] LoRA
        [vae] VAE
       *[embedding] embedding
    } “{ $value }”. The closest: { $choices }
error-extra-none = { $backend } has no { $what ->
        [lora] LoRAs
        [vae] VAEs
       *[embedding] embeddings
    } to choose from, so “{ $value }” cannot be used.
error-local-lora-needs-peft = The local engine cannot load LoRAs because the peft package is not installed. Please tell the bot's admin.
error-local-lora-bad = The LoRA “{ $value }” could not be loaded into { $model } (a LoRA for another kind of model, or a damaged file).
