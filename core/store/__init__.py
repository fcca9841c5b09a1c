"""Dataset persistence: every on-disk name (:mod:`.layout`), the dataset model (:mod:`.dataset`), mask write-back
and review sidecars (:mod:`.writeback`), locks (:mod:`.locking`), the crash journal (:mod:`.journal`) and the
download manifest (:mod:`.manifest`)."""
