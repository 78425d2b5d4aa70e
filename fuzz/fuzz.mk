# fuzz.mk: libFuzzer harnesses (make fuzz).
