"""Helpers the tests share (servers, data builders, fault injection, test doubles). No test module imports another
test module: what two test files need lives here."""
