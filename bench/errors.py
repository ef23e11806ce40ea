"""The benchmark's own error: an item that cannot run says why, and the others go on."""


class BenchError(RuntimeError):
    pass
