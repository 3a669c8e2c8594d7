package rewards

import "testing"

// accuracyCases are realistic (prediction, gold) pairs: the kinds of answers
// in the Sujet-Finance-QA-Vision data (fixtures/sujet-parquet) and in
// financial statements.
var accuracyCases = []struct {
	pred, gold string
	want       bool
}{
	// Currency and scale.
	{"$79M", "$79M", true},
	{"79 million dollars", "$79M", true},
	{"$79 million", "79 million dollars", true},
	{"USD 79,000,000", "$79M", true},
	{"$79.3M", "$79M", true}, // within 1%
	{"$81M", "$79M", false},
	{"€79M", "$79M", false}, // other currency
	{"79", "$79M", true},    // the question asked in millions
	{"79 billion dollars", "$79M", false},
	{"$1.2bn", "$1,200 million", true},
	{"1.2 billion", "USD 1.2B", true},
	{"EUR 3.4 mn", "€3.4 million", true},
	{"£250k", "£250,000", true},
	{"250 thousand pounds", "£250,000", true},
	{"¥1,500", "1,500 yen", true},
	{"¥1,500", "CNY 1,500", true},
	{"$1,234,567", "1234567", true},
	{"$1.234.567,89", "$1,234,567.89", true},
	{"3.5 mm", "$3.5 million", true},
	{"12,345", "12,354", true}, // 0.07% off: within the 1% tolerance
	{"12,000", "12,345", false},
	// Percentages.
	{"17.4%", "17.4%", true},
	{"17.39%", "17.4%", true},
	{"17.4", "17.4%", true},
	{"17.4 percent", "17.4%", true},
	{"0.174", "17.4%", false},
	{"47.6%", "17.4%", false},
	{"An increase of 25%", "25%", true},
	{"(120 - 96) / 96 = 25%", "25%", true},
	{"Growth = (63 - 23) / 23 * 100 = 173.9%", "173.9%", true},
	{"From $20M to $25M, up 25%", "25%", true},
	{"2.5 percentage points", "2.5%", true},
	// Negatives.
	{"(1,234)", "-1,234", true},
	{"-$1,234", "($1,234)", true},
	{"1,234", "(1,234)", false},
	{"a decline of 5.2%", "-5.2%", true},
	{"-5.2%", "5.2% decrease", true},
	{"5.2%", "-5.2%", false},
	{"Net loss of $3.1 million", "($3.1M)", true},
	{"−4.5%", "-4.5%", true}, // Unicode minus sign
	// Equations and several numbers.
	{"450 + 320 + 230 = 1,000", "1000", true},
	{"Total = $1,000K", "$1M", true},
	{"The difference is $5M ($25M - $20M)", "$5M", true},
	{"Revenue was $20M in 2022 and $25M in 2023", "$7M", false},
	{"Q1 revenue was $79M", "$79M", true},
	// Years and dates.
	{"2023", "2023", true},
	{"FY2023", "2023", true},
	{"In fiscal year 2023", "2023", true},
	{"2022", "2023", false},
	{"2022 and 2023", "2023", false},
	{"March 31, 2023", "2023-03-31", true},
	{"31 March 2023", "March 31, 2023", true},
	{"03/31/2023", "31/03/2023", true},
	{"31-Mar-23", "2023-03-31", true},
	{"Mar. 31st, 2023", "31.03.2023", true},
	{"2023-03-30", "March 31, 2023", false},
	{"December 2022", "Dec 2022", true},
	{"December 2021", "Dec 2022", false},
	{"The fiscal year ended on September 30, 2023", "30 September 2023", true},
	// Text.
	{"The third quarter", "The third quarter", true},
	{"Q3", "The third quarter", true},
	{"3rd quarter", "Q3", true},
	{"Q4", "The third quarter", false},
	{"Q3 2023", "Q3 2023", true},
	{"2023", "Q3 2023", false},
	{"Apple Inc.", "apple inc", true},
	{"Société Générale", "Societe Generale", true},
	{"Cost of goods sold", "cost of goods sold.", true},
	{"Operating expenses", "Cost of goods sold", false},
	{"Yes, revenue grew every year", "Yes", true},
	{"No", "Yes", false},
	{"North America", "the North America segment", true},
	{"North America", "North America and Europe", false},
	{"North America segment", "North America", true},
	{"The answer is North America", "North America", true},
	{"South America", "North America", false},
	{"The answer is $988.05", "€988.05", false},
	{"988.05 EUR", "€988.05", true},
	{"$112,200", "$112.2 thousand", true},
	{"a decrease of $157 million", "-$157 million", true},
	{"4 quarters", "4", true},
	{"INV-2020-3249", "INV-2020-3249", true},
	{"INV-2020-3294", "INV-2020-3249", false},
	{"2022", "2022", true},
	{"Revenue peaked in FY2022.", "2022", true},
	{"", "42", false},
	{"42", "", false},
}

func TestAccuracyMatch(t *testing.T) {
	if len(accuracyCases) < 60 {
		t.Fatalf("only %d cases", len(accuracyCases))
	}
	pos := 0
	for _, c := range accuracyCases {
		if c.want {
			pos++
		}
		if got := (Accuracy{}).Match(c.pred, c.gold); got != c.want {
			t.Errorf("Match(pred %q, gold %q) = %v, want %v", c.pred, c.gold, got, c.want)
		}
	}
	if pos < 20 || len(accuracyCases)-pos < 20 {
		t.Errorf("unbalanced table: %d positive, %d negative", pos, len(accuracyCases)-pos)
	}
}

func TestAccuracyTolerance(t *testing.T) {
	exact := Accuracy{RelTol: -1}
	if exact.Match("$79.3M", "$79M") {
		t.Error("exact accuracy accepted $79.3M for $79M")
	}
	if !exact.Match("$79,000,000", "$79M") {
		t.Error("exact accuracy rejected $79,000,000 for $79M")
	}
	loose := Accuracy{RelTol: 0.05}
	if !loose.Match("$82M", "$79M") {
		t.Error("5% accuracy rejected $82M for $79M")
	}
	if loose.Match("$84M", "$79M") {
		t.Error("5% accuracy accepted $84M for $79M")
	}
}

func TestAccuracyScore(t *testing.T) {
	const prefill = "Let me solve this step by step.\n<think>"
	for _, c := range []struct {
		completion, answer string
		want               float64
	}{
		{" Q1 bar reads 79.</think><answer>$79M</answer>", "$79M", 1},
		{" Q1 bar reads 79.</think><answer>$29M</answer>", "$79M", 0},
		{" the answer is $79M", "$79M", 0}, // no answer tags
		{" x</think><answer>17.4%", "17.4%", 0},
	} {
		got := Accuracy{}.Score(Input{Prefill: prefill, Completion: c.completion, Answer: c.answer})
		if got != c.want {
			t.Errorf("Score(%q, gold %q) = %v, want %v", c.completion, c.answer, got, c.want)
		}
	}
}

func FuzzAccuracyMatch(f *testing.F) {
	for _, c := range accuracyCases {
		f.Add(c.pred, c.gold)
	}
	f.Fuzz(func(t *testing.T, pred, gold string) {
		a := Accuracy{}
		if a.Match(pred, gold) != a.Match(pred, gold) {
			t.Fatal("not deterministic")
		}
		if gold != "" && !a.Match(gold, gold) && normalizeWords(gold) != "" {
			t.Fatalf("gold %q does not match itself", gold)
		}
	})
}
