--- The providers streamctl speaks to, by name: the one place a provider is
-- registered.
--
-- Each name is a module, `streamctl.NAME`: its client class, made by
-- streamctl.pipeline.client's `define` from the provider's rules (the
-- written interface: streamctl.pipeline.provider). `require "streamctl"`
-- gives each as `streamctl.NAME`; the command, when it is installed, gives
-- each a subcommand from `streamctl.cli.providers.NAME` (its flags for
-- credentials, its examples: streamctl.cli.provider); the house's layer
-- check places each among the providers. A new provider is its own files
-- and one line here (spec/02-provider-interface builds one).
-- @module streamctl.providers

return {
  "aliyun",
  "zego",
}
