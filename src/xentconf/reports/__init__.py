"""Reports: turn results files into readable reports; reads ``xentconf.results`` only."""
