"""One package per external API: `client` (HTTP calls only), `convert` (pure payload ↔
observed records) and the provider functions the engine calls. Errors are mapped once, in
`transport`, into the ProviderError tree."""
