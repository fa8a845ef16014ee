"""The GTX 580 (the paper's GPU) as data, with a source per figure.

Example:
>>> GTX580.cuda_cores, GTX580.memory_bytes == 3 * 2**30
(512, True)
>>> round(GTX580.peak_flops / 1e9)
1581
"""

from dataclasses import dataclass

from ._data import as_bool, read_csv


@dataclass(frozen=True)
class GPU:
    """One card's figures; `specs` maps key -> (value, unit, derived, source)."""

    name: str
    specs: dict

    def value(self, key):
        return self.specs[key][0]

    def source(self, key):
        return self.specs[key][3]

    @property
    def cuda_cores(self):
        return int(self.value("cuda_cores"))

    @property
    def shader_clock_hz(self):
        return self.value("shader_clock") * 1e6

    @property
    def peak_flops(self):
        """FP32 FLOP/s: cores x 2 (one fused multiply-add) x shader clock; derived, not quoted."""
        return self.cuda_cores * 2 * self.shader_clock_hz

    @property
    def memory_bytes(self):
        """Memory of the cards used in the paper (3 GB, taken as 3 GiB: the cards had 3072 MiB)."""
        return int(self.value("memory_paper_card") * 2**30)

    @property
    def memory_bandwidth(self):
        """Bytes per second."""
        return self.value("memory_bandwidth") * 1e9

    @property
    def cards_in_paper(self):
        return int(self.value("cards_in_paper"))

    def rows(self):
        """(key, value, unit, derived, source) tuples, in file order."""
        return [(k, *v) for k, v in self.specs.items()]


def load_gtx580():
    """Reads `data/gtx580.csv` and checks the derived peak against the raw figures."""
    specs = {
        r["key"]: (float(r["value"]), r["unit"], as_bool(r["derived"]), r["source"]) for r in read_csv("gtx580.csv")
    }
    gpu = GPU("NVIDIA GeForce GTX 580", specs)
    stated = gpu.value("peak_fp32") * 1e9
    if abs(gpu.peak_flops - stated) > 1e9:  # the file's rounded figure must follow from cores x clock
        raise ValueError(f"gtx580.csv: peak_fp32 {stated:g} disagrees with cores x 2 x clock {gpu.peak_flops:g}")
    return gpu


GTX580 = load_gtx580()
