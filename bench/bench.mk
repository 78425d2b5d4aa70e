# bench.mk: the side-by-side benchmark (make bench).
