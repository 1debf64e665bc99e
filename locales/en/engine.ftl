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
} On a machine without internet, build the demo model with “python -m bot demo-model” and use --model demo (it paints noise).
error-out-of-memory = The GPU ran out of memory. Try a smaller size or fewer pictures (--n).
error-local-input-gone = The { $what ->
    [mask] mask
   *[other] picture
} for this job is no longer stored. Please send it again.
withheld-nsfw = the model's safety checker
