"""cvae-edge: the onboard daemon (config, journal, sd_notify, main loop)."""
