"""lichen"""
