"""Complete search: the attack, LP branch and bound, batched beta-CROWN branch and bound, the ``exact`` and ``milp`` methods."""
