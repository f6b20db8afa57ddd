"""Runtime: what every job and the workflow need to run safely on a shared machine. Atomic
output (`atomic_write`), one checked reader of result files (`checked_read`), the GPU lease
that gives each job its own devices or slots (`gpu_lease`), how a job uses the machine
(`job_policy`: its GPUs, launcher, threads, concurrent LRs and shell prefix), the record
of who holds the workflow's lock (`run_lock`), the watch that stops a job with the run
that started it (`orphans`), the check of the lab's cache folder (`shared_cache`) and the
command that redoes a result with the run's own arguments (`rerun_command`).

The lowest layer beside the core modules (`errors`, `paths`, `seeding`, `formulas`,
`versions`): imports nothing else from the package.
"""
