import ArgumentParser

extension QKDB {
    /// Every subcommand, in the order `qkdb --help` lists them; each lives in its own file.
    static let allCommands: [ParsableCommand.Type] = [
        HarvestCommand.self,
        TrainCommand.self,
        MaskCommand.self,
        EvalCommand.self,
        RunCommand.self,
        SweepCommand.self,
        RunsCommand.self,
        HeadsCommand.self,
        PairsCommand.self,
        SinksCommand.self,
        FeatureCommand.self,
        FeaturesCommand.self,
        LabelCommand.self,
        ExplainCommand.self,
        ExportCommand.self,
        ExportDictionariesCommand.self,
        ImportPairsCommand.self,
        MergeCommand.self,
        VerifyCommand.self,
        ReportCommand.self,
        StoreBenchCommand.self,
        BenchForwardCommand.self,
    ]
}
