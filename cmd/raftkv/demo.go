package main

import "io"

func runDemo(args []string, out io.Writer) error { return nil }
