"""ComfyUI in this process, without a browser: finding and starting the host with the pack (for the
runner, the tests, the benchmarks and the tools alike), UI-to-API conversion, overrides, and the
host's executor."""
