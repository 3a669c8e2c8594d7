package synth

import "math/rand/v2"

// Word lists the documents draw from.
var (
	companyStems = []string{"Northwind", "Bluefin", "Crescent", "Apex", "Harbor", "Summit", "Silverline", "Redwood",
		"Ironbridge", "Lumen", "Oakridge", "Vantage", "Meridian", "Cobalt", "Evergreen", "Falcon", "Granite",
		"Horizon", "Keystone", "Larkspur", "Mariner", "Nimbus", "Orion", "Pinnacle", "Quarry", "Riverstone",
		"Sterling", "Tidewater", "Umbra", "Valley", "Westfield", "Zenith", "Aurora", "Beacon", "Cedar", "Delta"}
	companyKinds = []string{"Holdings", "Corp.", "Inc.", "Group", "Ltd", "AG", "S.A.", "Industries", "Technologies",
		"Foods", "Logistics", "Energy", "Retail", "Pharma", "Motors", "Capital", "Systems", "Media"}
	segments = []string{"North America", "Europe", "Asia Pacific", "Latin America", "Middle East", "Africa",
		"Cloud", "Hardware", "Services", "Software", "Licensing", "Advertising", "Consumer", "Enterprise",
		"Wholesale", "Online", "Stores", "Healthcare"}
	invoiceItems = []string{"Consulting hours", "Software licence", "Laptop", "Monitor", "Office chairs", "Cloud hosting",
		"Support plan", "Training session", "Printer toner", "Network switch", "Desk lamps", "Cables", "Design work",
		"Audit services", "Travel expenses", "Catering", "Shipping", "Maintenance", "Data storage", "Security review"}
	easyLabels = [][]string{{"A", "B", "C", "D"}, {"Red", "Blue", "Green", "Gold"}, {"Mon", "Tue", "Wed", "Thu"},
		{"North", "South", "East", "West"}, {"Cats", "Dogs", "Fish", "Birds"}}
	monthNames = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September",
		"October", "November", "December"}
)

// metric is a figure a chart or table can show.
type metric struct {
	name   string // as in a question: "revenue", "operating expenses"
	title  string // as in a heading: "Revenue"
	plural bool   // "were" rather than "was"
	count  bool   // a count (no currency), e.g. units shipped
	signed bool   // may be negative (net income, cash flow)
}

// verb returns "was" or "were" to agree with the metric.
func (m metric) verb() string {
	if m.plural {
		return "were"
	}
	return "was"
}

var metrics = []metric{
	{name: "revenue", title: "Revenue"}, {name: "net sales", title: "Net sales", plural: true},
	{name: "operating income", title: "Operating income"}, {name: "net income", title: "Net income", signed: true},
	{name: "EBITDA", title: "EBITDA"}, {name: "free cash flow", title: "Free cash flow", signed: true},
	{name: "capital expenditure", title: "Capital expenditure"}, {name: "R&D expense", title: "R&D expense"},
	{name: "gross profit", title: "Gross profit"}, {name: "operating expenses", title: "Operating expenses", plural: true},
	{name: "number of subscribers", title: "Subscribers", count: true},
	{name: "number of units shipped", title: "Units shipped", count: true},
	{name: "number of employees", title: "Employees", count: true},
}

// metricPairs are two figures drawn together, the second a part of the first.
var metricPairs = [][]metric{
	{metrics[0], metrics[2]}, {metrics[0], metrics[3]}, {metrics[1], metrics[8]}, {metrics[0], metrics[4]},
	{metrics[1], metrics[9]}, {metrics[4], metrics[6]}, {metrics[0], metrics[7]},
}

// currencies a document may use, with their usual scales.
var currencySymbols = []string{"$", "$", "$", "€", "€", "£", "¥", "CHF "}

// palettes are bar/line colours; backgrounds are page colours.
var (
	palettes = [][]uint32{
		{0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728}, {0x4e79a7, 0xf28e2b, 0x59a14f, 0xe15759},
		{0x264653, 0x2a9d8f, 0xe9c46a, 0xf4a261}, {0x003f5c, 0x7a5195, 0xef5675, 0xffa600},
		{0x1b4332, 0x40916c, 0x95d5b2, 0x081c15}, {0x5f0f40, 0x9a031e, 0xfb8b24, 0x0f4c5c},
		{0x22223b, 0x4a4e69, 0x9a8c98, 0xc9ada7}, {0x0077b6, 0x00b4d8, 0x90e0ef, 0x03045e},
	}
	backgrounds = []uint32{0xffffff, 0xffffff, 0xffffff, 0xfbf8f1, 0xf4f6f8, 0xf7f7f2}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// pickN returns n distinct elements of xs in random order.
func pickN[T any](rng *rand.Rand, xs []T, n int) []T {
	idx := rng.Perm(len(xs))[:n]
	out := make([]T, n)
	for i, j := range idx {
		out[i] = xs[j]
	}
	return out
}
