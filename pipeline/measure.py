"""The peak memory of a job rendered in this process, for the manifest (and a sweep's table).

RAM: the process's resident peak (VmHWM), which Linux lets a process reset by writing 5 to
/proc/self/clear_refs (Linux 4.0+, proc(5)), so each job's peak is its own, not the batch's so far
(whoever else reads VmHWM in this process sees the peak since the last job started; getrusage's
ru_maxrss, the whole process's, is not reset).
GPU: torch's peak allocation on the current CUDA device (torch.cuda.reset_peak_memory_stats), when
torch is loaded and has one. Where neither can be measured (another OS, a --server job, whose memory
is the server's) the fields are left out.
"""
import sys

MIB = 2 ** 20


class PeakMemory:
    def __enter__(self):
        self.fields, self.ram = {}, _reset_ram_peak()
        self.gpu = _cuda()
        if self.gpu is not None:
            self.gpu.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        if self.ram:
            peak = _ram_peak_kib()
            if peak is not None:
                self.fields["peak_ram_mib"] = round(peak / 1024, 1)
        if self.gpu is not None:
            self.fields["peak_vram_mib"] = round(self.gpu.max_memory_allocated() / MIB, 1)


def _reset_ram_peak():
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:  # not Linux, or not allowed: a peak since the process started would mislead
        return False


def _ram_peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def _cuda():
    torch = sys.modules.get("torch")  # never imported here: a --server driver may have no torch
    return torch.cuda if torch is not None and torch.cuda.is_available() else None
