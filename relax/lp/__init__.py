"""The triangle LP and big-M MILP: encoding, disjunct objectives, the hot-started runner, LP tightening, the ``lp`` method."""
