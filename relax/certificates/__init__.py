"""Closed-form certificates: the curvature certificate (CRC) of Singla & Feizi (2020)."""
