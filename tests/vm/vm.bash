# tests/vm/vm.bash - helpers for the tests in tests/vm/, sourced inside the VM (scripts/vm/run
# copies a test's sibling files to /vmtest). Not a test itself: scripts/test runs only *.sh.

# vm_require TOOL...: every TOOL is on the VM's PATH and the kernel has WireGuard; otherwise
# the test fails at once (a missing binary means scripts/vm/run was not given it).
vm_require() {
	local b
	for b in "$@"; do
		command -v "$b" >/dev/null || { echo "FAIL - $b is not in the VM (scripts/vm/run --build DIR)"; exit 1; }
	done
	if ! ip link add mvprobe type wireguard 2>/dev/null; then
		echo "FAIL - this kernel has no WireGuard"
		exit 1
	fi
	ip link del mvprobe
}
