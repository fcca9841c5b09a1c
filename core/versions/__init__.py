"""Model versions: the registry (:mod:`.registry`), evaluation (:mod:`.evaluation`) and the one
train -> evaluate -> register path (:mod:`.retrain`) that ``heartseg train`` and Model > Retrain share."""
