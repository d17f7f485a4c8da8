"""A valid user pattern file, the base the error-message tests mutate."""

from __future__ import annotations

GOOD = """\
id: my-retry
name: My retry
category: retry
technology_stack: [python]
problem: Things fail.
solution: Try again.
code_example:
  language: python
  code: |
    x = 1
configuration: {attempts: 3}
threats: [flaky_network]
verification_status: community
reliability_score: 0.5
tags: [retry]
references:
  - title: A book
gene:
  name: retry
  parameters: {max_attempts: 3}
"""
