package main

import "errors"

func runEnv(c *cli, args []string) error { return errors.New("not built yet") }

func runBench(c *cli, args []string) error { return errors.New("not built yet") }
