package main

import "fmt"

// runData dispatches `mmft data inspect|sample|synth`.
func runData(c *cli, args []string) error {
	const usage = "Usage: mmft data inspect|sample|synth [flags]\n\n" +
		"  inspect  splits, files, rows, QA pairs, image sizes and the bad-row report of a dataset\n" +
		"  sample   show a few rows of a dataset and save their images\n" +
		"  synth    write the synthetic financial-document dataset as parquet\n"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "inspect":
		return runDataInspect(c, args[1:])
	case "sample":
		return runDataSample(c, args[1:])
	case "synth":
		return runDataSynth(c, args[1:])
	}
	fmt.Fprintf(c.stderr, "mmft data: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
