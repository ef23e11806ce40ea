"""Tests of src/rescale_ssh/hook/ (and its commands).

The hook and the proxy, as ssh runs them."""
