// Loaded before every test file (bunfig.toml). bunker's `run` joins the default bridge network
// unless told otherwise; the suite's containers do not, so that no test touches the machine's own
// links and iptables: the network tests make their own network namespaces and say --net there.
process.env.BUNKER_NETWORK ??= "none";
