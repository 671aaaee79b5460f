"""The load and fault test of the serve fleet (issue 19, part 5): ``make loadtest``."""
