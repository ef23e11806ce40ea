"""The Rescale platform: the API client and its transports, resolving a job to a target, log
lines, job lists and statuses, the account and the Rescale CLI's apiconfig, waiting."""
