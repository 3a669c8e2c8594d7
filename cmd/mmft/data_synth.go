package main

import "errors"

// runDataSynth is replaced by the data issue's implementation.
func runDataSynth(c *cli, args []string) error {
	return errors.New("not built yet (the data issue brings it)")
}
