"""Targeted active learning (CLINICAL, the first paper): the loop that trains, selects and labels round by round
(`loop`) and running a configured experiment over seeds and strategies (`run`)."""
