"""The SDP relaxation (Raghunathan et al. 2018): encoding, solving, the ``sdp`` method, and the one-hidden-layer dual certificate."""
